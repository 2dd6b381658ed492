'use strict';
const http = require('node:http');
const port = Number(process.env.PORT || 3000);
http.createServer((req, res) => res.end(req.url === '/health' ? 'ok\n' : 'hello from node\n')).listen(port);
