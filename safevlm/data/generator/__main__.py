from safevlm.data.generator.cli import main

raise SystemExit(main())
