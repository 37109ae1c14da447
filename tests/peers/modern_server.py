"""A 2026-07-28 server on the official Python SDK (MCPServer) whose tool asks its client for input:
in that era the request travels as an input_required result and the client's retry."""
from typing import Annotated
from pydantic import BaseModel
from mcp.server.mcpserver import MCPServer, Resolve, Elicit

server = MCPServer("modern-asker")

class Answer(BaseModel):
    name: str

def ask():
    return Elicit("What is your name?", Answer)

@server.tool()
async def ask_name(answer: Annotated[Answer, Resolve(ask)]) -> str:
    return f"hello {answer.name}"

@server.tool()
def add(a: int, b: int) -> int:
    return a + b

if __name__ == "__main__":
    import sys

    # `modern_server.py` speaks stdio; `modern_server.py http PORT` Streamable HTTP at /mcp.
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
