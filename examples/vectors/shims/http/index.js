// caver-js lists "http@0.0.1-security" (an empty npm placeholder) as a dependency.
// Resolve it to Node's built-in module instead.
module.exports = require('node:http');
