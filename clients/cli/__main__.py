from clients.cli.main import app

app(prog_name="trademaster")
