from dcf77shm.cli.main import main

main()
