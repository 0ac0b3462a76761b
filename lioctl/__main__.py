from lioctl.cli import main

raise SystemExit(main())
