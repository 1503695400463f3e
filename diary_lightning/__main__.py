from diary_lightning.cli.commands import main

main()
