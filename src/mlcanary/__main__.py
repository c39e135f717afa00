from mlcanary.cli import main

main()
