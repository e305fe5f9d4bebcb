from netpolgen.cli import entry

entry()
