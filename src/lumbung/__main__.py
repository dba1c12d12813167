from lumbung.cli import main

main()
