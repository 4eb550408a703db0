from dcf77shm.cli import main

main()
