from kompete.cli import main

main()
