from nclayers.cli import main

main()
