// The OpenMetadata server's activity feed, for the e2e suite: a socket.io 4 server under
// /api/v1/push/feed, registering each connection under its user id the way the server's
// WebSocketManager does (the `UserId` header first, else the `userId` query), and pushing on the
// server's `activityFeed` channel. Every other request is passed to the Python stand-in
// (e2e/lib/standin.py) given as STANDIN, so `loggedInUser` is answered by the same code as in
// the other parts.
//
//   STANDIN=127.0.0.1:PORT node server.js     prints {"listening": "127.0.0.1:PORT"}, then one
//                                             JSON line per connection it registers
'use strict';
const http = require('node:http');
const { Server } = require('socket.io');

const [standinHost, standinPort] = (process.env.STANDIN || '').split(':');
if (!standinHost || !standinPort) {
  console.error('STANDIN=host:port is required');
  process.exit(2);
}

const httpServer = http.createServer((request, response) => {
  const upstream = http.request(
    { host: standinHost, port: Number(standinPort), method: request.method, path: request.url, headers: request.headers },
    (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on('error', (error) => {
    response.writeHead(502, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ code: 502, message: String(error) }));
  });
  request.pipe(upstream);
});

// OpenMetadata serves socket.io at /api/v1/push/feed (the UI's ROUTES.ACTIVITY_PUSH_FEED).
const io = new Server(httpServer, { path: '/api/v1/push/feed', serveClient: false });

io.on('connection', (socket) => {
  const headers = socket.handshake.headers;
  const userId = headers.userid || socket.handshake.query.userId;
  const seen = {
    userId,
    userIdHeader: headers.userid ?? null,
    cookie: headers.cookie ?? null,
    transport: socket.conn.transport.name,
  };
  console.log(JSON.stringify({ connection: seen }));
  if (!userId) {
    return;
  }
  // The server pushes JSON strings: sendToOne(receiver, FEED_BROADCAST_CHANNEL, message).
  socket.emit('activityFeed', JSON.stringify({ to: userId, over: socket.conn.transport.name, seen }));
  socket.conn.on('upgrade', (transport) => {
    socket.emit('activityFeed', JSON.stringify({ to: userId, over: transport.name, seen }));
  });
});

httpServer.listen(0, '127.0.0.1', () => {
  const { address, port } = httpServer.address();
  console.log(JSON.stringify({ listening: `${address}:${port}` }));
});

process.on('SIGTERM', () => {
  io.close();
  httpServer.close(() => process.exit(0));
});
