from tlsarotate.cli import main

raise SystemExit(main())
