from digitgen_client.cli import main

main()
