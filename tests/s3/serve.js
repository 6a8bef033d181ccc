#!/usr/bin/env node
// The S3 server sluice's tests talk to: s3rver (a real S3 implementation on a folder) behind a
// small front that s3rver lacks:
//  - it verifies every AWS Signature V4 (s3rver 3.7.1 checks only the access key id and the
//    date, never the signature or the payload hash) and answers 403 SignatureDoesNotMatch or
//    XAmzContentSHA256Mismatch, so the tests exercise sluice's signing for real;
//  - fault injection: POST /__sluice/fail?status=503&code=SlowDown&count=3[&method=PUT] makes the
//    next matching requests fail, POST /__sluice/clear drops what is left of those; GET
//    /__sluice/stats counts requests and signature failures; POST /__sluice/delay?ms=2000[&method=PUT]
//    answers every matching request that much later (a slow store), until /__sluice/clear.
// Usage: node serve.js --port P --directory DIR [--address 127.0.0.1] [--bucket sluice]
//        [--service-endpoint localhost]   (virtual-hosted buckets: BUCKET.s3.localhost)
'use strict';

const crypto = require('crypto');
const http = require('http');
const path = require('path');
const S3rver = require(path.join(__dirname, 'node_modules', 's3rver'));

const CREDENTIALS = { S3RVER: 'S3RVER' }; // access key id -> secret (s3rver's built-in account)

function parseArgs(argv) {
  const opts = { address: '127.0.0.1', bucket: 'sluice', serviceEndpoint: 'amazonaws.com' };
  for (let i = 2; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
    opts[name] = argv[i + 1];
  }
  if (!opts.port || !opts.directory) {
    console.error('usage: serve.js --port P --directory DIR [--address A] [--bucket B] [--service-endpoint E]');
    process.exit(2);
  }
  return opts;
}

// ---- SigV4, written from the AWS documentation independently of sluice's C code ----

const sha256 = data => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

function awsEncode(s, keepSlash) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

// Percent-decoding that keeps '+' as '+' (S3 paths and sluice's queries never mean space by it).
function decode(s) {
  return decodeURIComponent(s);
}

function canonicalRequest(req, signedHeaders, payloadHash) {
  const [rawPath, rawQuery = ''] = req.url.split(/\?(.*)/s);
  const uri = awsEncode(decode(rawPath), true);
  const query = rawQuery
    .split('&')
    .filter(p => p.length)
    .map(p => {
      const i = p.indexOf('=');
      const name = i < 0 ? p : p.slice(0, i);
      const value = i < 0 ? '' : p.slice(i + 1);
      return [awsEncode(decode(name), false), awsEncode(decode(value), false)];
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([n, v]) => n + '=' + v)
    .join('&');
  const headers = signedHeaders
    .map(h => h + ':' + String(req.headers[h] ?? '').trim().replace(/ +/g, ' ') + '\n')
    .join('');
  return [req.method, uri, query, headers, signedHeaders.join(';'), payloadHash].join('\n');
}

// Returns null when the request is signed correctly, else [code, message].
function checkSignature(req, body) {
  const auth = req.headers.authorization || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return ['AccessDenied', 'missing or malformed AWS4-HMAC-SHA256 Authorization header: ' + auth];
  const [, accessKey, date, region, signedList, signature] = m;
  const secret = CREDENTIALS[accessKey];
  if (!secret) return ['InvalidAccessKeyId', 'unknown access key ' + accessKey];
  const signed = signedList.split(';');
  for (const required of ['host', 'x-amz-content-sha256', 'x-amz-date']) {
    if (!signed.includes(required)) return ['AccessDenied', required + ' is not signed'];
  }
  for (const h of Object.keys(req.headers)) {
    if ((h.startsWith('x-amz-') || h === 'range') && !signed.includes(h)) {
      return ['AccessDenied', 'header ' + h + ' is sent but not signed'];
    }
  }
  const amzDate = req.headers['x-amz-date'] || '';
  if (amzDate.slice(0, 8) !== date) return ['AccessDenied', 'credential date differs from x-amz-date'];
  const payloadHash = req.headers['x-amz-content-sha256'];
  if (payloadHash !== sha256(body)) {
    return ['XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed."];
  }
  const creq = canonicalRequest(req, signed, payloadHash);
  const scope = `${date}/${region}/s3/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(creq)].join('\n');
  let key = hmac('AWS4' + secret, date);
  for (const part of [region, 's3', 'aws4_request']) key = hmac(key, part);
  const expected = crypto.createHmac('sha256', key).update(stringToSign).digest('hex');
  if (expected !== signature) {
    return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Canonical request: ' + JSON.stringify(creq)];
  }
  return null;
}

function sendError(res, status, code, message) {
  const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + '</Code><Message>' +
    message.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;') + '</Message></Error>';
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(xml) });
  res.end(xml);
}

async function main() {
  const opts = parseArgs(process.argv);
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
  } catch (e) {
    // s3rver 3.7.1 makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in
    // its legacy provider: without it every second page of a listing is a 500.
    console.error('serve.js: DES is unavailable (%s); run node with --openssl-legacy-provider', e.message);
    process.exit(2);
  }
  const backend = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: opts.directory,
    silent: true,
    serviceEndpoint: opts.serviceEndpoint,
    configureBuckets: [{ name: opts.bucket, configs: [] }],
  });
  const { port: backendPort } = await backend.run();
  const agent = new http.Agent({ keepAlive: true });

  const stats = { requests: 0, methods: {}, signatureFailures: 0, injected: 0 };
  let faults = []; // {status, code, count, method}
  let delays = []; // {ms, method}

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url.startsWith('/__sluice/')) {
        const u = new URL(req.url, 'http://x');
        if (u.pathname === '/__sluice/stats') {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          return res.end(JSON.stringify(stats));
        }
        if (u.pathname === '/__sluice/clear') {
          faults = [];
          delays = [];
          res.writeHead(204);
          return res.end();
        }
        if (u.pathname === '/__sluice/fail') {
          faults.push({
            status: Number(u.searchParams.get('status') || 503),
            code: u.searchParams.get('code') || 'ServiceUnavailable',
            count: Number(u.searchParams.get('count') || 1),
            method: u.searchParams.get('method') || null,
          });
          res.writeHead(204);
          return res.end();
        }
        if (u.pathname === '/__sluice/delay') {
          delays.push({ ms: Number(u.searchParams.get('ms') || 1000), method: u.searchParams.get('method') || null });
          res.writeHead(204);
          return res.end();
        }
        res.writeHead(404);
        return res.end();
      }
      const delay = delays.find(d => !d.method || d.method === req.method);
      if (delay) {
        stats.delayed = (stats.delayed || 0) + 1;
        return setTimeout(() => serve(req, res, body), delay.ms);
      }
      serve(req, res, body);
    });
  });

  function serve(req, res, body) {
    stats.requests++;
    stats.methods[req.method] = (stats.methods[req.method] || 0) + 1;
    const fault = faults.find(f => f.count > 0 && (!f.method || f.method === req.method));
    if (fault) {
      fault.count--;
      faults = faults.filter(f => f.count > 0);
      stats.injected++;
      return sendError(res, fault.status, fault.code, 'injected by the test');
    }
    let bad;
    try {
      bad = checkSignature(req, body);
    } catch (e) {
      bad = ['AccessDenied', 'cannot check the signature: ' + e];
    }
    if (bad) {
      stats.signatureFailures++;
      console.error('serve.js: %s %s rejected: %s: %s', req.method, req.url, bad[0], bad[1]);
      return sendError(res, 403, bad[0], bad[1]);
    }
    const headers = { ...req.headers, 'content-length': String(body.length) };
    delete headers['transfer-encoding'];
    const fwd = http.request(
      { host: '127.0.0.1', port: backendPort, method: req.method, path: req.url, headers, agent },
      up => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    fwd.on('error', e => sendError(res, 500, 'InternalError', String(e)));
    fwd.end(body);
  }
  server.keepAliveTimeout = 30000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(opts.port), opts.address, resolve);
  });
  console.log('serve.js: S3 on %s:%d (s3rver on 127.0.0.1:%d), bucket %s, data in %s', opts.address,
    server.address().port, backendPort, opts.bucket, opts.directory);
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(e => {
  console.error('serve.js:', e);
  process.exit(1);
});
