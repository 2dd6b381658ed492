'use strict';
// A stand-in for a bundler: concatenates src/*.js into dist/app.js with a banner.
const fs = require('node:fs');
const path = require('node:path');
const files = fs.readdirSync('src').filter((f) => f.endsWith('.js')).sort();
fs.mkdirSync('dist', { recursive: true });
const body = files.map((f) => `// ${f}\n${fs.readFileSync(path.join('src', f), 'utf8')}`).join('\n');
fs.writeFileSync('dist/app.js', `/* ${require('./package.json').name} */\n${body}`);
fs.writeFileSync('dist/manifest.json', JSON.stringify({ files }, null, 2) + '\n');
