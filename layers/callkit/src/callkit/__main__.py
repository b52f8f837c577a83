from callkit.cli import main

main()
