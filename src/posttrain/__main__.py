from posttrain.cli.main import entry

entry()
