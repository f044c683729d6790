from posttrain.cli.launch import entry

entry()
