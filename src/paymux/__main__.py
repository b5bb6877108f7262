from paymux.cli import main

main()
