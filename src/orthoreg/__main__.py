from orthoreg.cli import main

main()
