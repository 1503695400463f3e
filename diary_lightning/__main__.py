from diary_lightning.cli import main

main()
