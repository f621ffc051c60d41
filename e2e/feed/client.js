// One socket.io-client 4 connection to the activity feed, as the OpenMetadata UI opens it
// (WebSocketProvider: path /api/v1/push/feed, query userId, reconnection off here), through the
// gateway. Prints one JSON line with what happened and exits.
//
//   node client.js URL USER_ID TRANSPORTS [COOKIE] [EXTRA_HEADERS_JSON]
//     TRANSPORTS: websocket (the UI's choice) or polling,websocket (polling, then upgrade)
//   -> {"connected": true, "messages": [...], "transport": "websocket", "upgraded": true}
//   -> {"connected": false, "error": "...", "description": "..."}
'use strict';
const { io } = require('socket.io-client');

const [url, userId, transports, cookie, extra] = process.argv.slice(2);
const wanted = transports.split(',');
const extraHeaders = extra ? JSON.parse(extra) : {};
if (cookie) {
  extraHeaders.cookie = cookie;
}
const socket = io(url, {
  path: '/api/v1/push/feed',
  query: { userId },
  transports: wanted,
  reconnection: false,
  timeout: 8000,
  extraHeaders,
});

const result = { connected: false, messages: [], upgraded: false };
const expected = wanted.length > 1 ? 2 : 1; // one message on connect, one after the upgrade
let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  result.transport = socket.io.engine ? socket.io.engine.transport.name : null;
  console.log(JSON.stringify(result));
  socket.close();
  setTimeout(() => process.exit(code), 50);
}

// The engine opens (handshake over the first transport) before socket.io's `connect`, and may
// upgrade before it too: watch from the open.
socket.io.on('open', () => {
  result.openedOver = socket.io.engine.transport.name;
  socket.io.engine.on('upgrade', (transport) => {
    result.upgraded = transport.name;
  });
});
socket.on('connect', () => {
  result.connected = true;
});
socket.on('activityFeed', (message) => {
  result.messages.push(JSON.parse(message));
  if (result.messages.length >= expected) finish(0);
});
socket.on('connect_error', (error) => {
  result.error = error.message;
  const description = error.description;
  if (description !== undefined) {
    result.description = typeof description === 'object' ? String(description.message || description.error || JSON.stringify(description)) : String(description);
  }
  finish(1);
});
setTimeout(() => {
  result.error = result.error || 'timed out';
  finish(1);
}, 10000);
