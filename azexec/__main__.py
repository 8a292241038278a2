from azexec.cli import main

main()
