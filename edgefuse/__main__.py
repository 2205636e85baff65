from edgefuse.cli import main

main()
