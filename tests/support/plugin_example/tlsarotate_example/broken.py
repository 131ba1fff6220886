"""A plugin whose import fails, as one with a missing dependency would."""

raise ImportError("No module named 'frobnicate' (needed by tlsarotate-example-provider)")
