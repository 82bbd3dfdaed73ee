from .cli_train import main

main()
