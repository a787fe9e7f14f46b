from bsarec.cli import main

main()
