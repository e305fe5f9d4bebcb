from netpolgen.cli import main

main()
