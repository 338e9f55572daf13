from hivecast.cli.main import main

raise SystemExit(main())
