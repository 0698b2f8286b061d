import sys

try:
    from repro.cli import main

    code = main()
except KeyboardInterrupt:
    # Ctrl-C while Python loads the tool, before a command takes over the signal (`run`
    # does so before it writes anything); other commands write each file whole or not at all.
    run = sys.argv[1:2] == ["run"]
    print(
        f"interrupted by SIGINT{' before the first run: nothing written' if run else ''}",
        file=sys.stderr,
    )
    code = 130
sys.exit(code)
