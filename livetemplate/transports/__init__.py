"""The transports of a mounted app: the WebSocket, HTTP (pages, the client's HTTP mode,
forms without JavaScript) and the client's bundle. They only parse and write; the session
core, the runner and the hub do the rest."""
