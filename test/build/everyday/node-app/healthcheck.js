'use strict';
require('node:http').get(`http://127.0.0.1:${process.env.PORT || 3000}/health`, (res) => process.exit(res.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1));
