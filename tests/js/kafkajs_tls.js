// kafkajs 2.x over TLS for tests/integration/test_tls.py.
//   node kafkajs_tls.js BOOTSTRAP TOPIC COUNT CA_FILE [CERT_FILE KEY_FILE]
// produces COUNT messages "t<i>" (acks=all), consumes them back in a group from the beginning and
// prints "ok <count>" when every one came back in order; exits 1 on any error.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, countArg, ca, cert, key] = process.argv.slice(2);
const count = Number(countArg);
const ssl = { ca: [fs.readFileSync(ca)], rejectUnauthorized: true };
if (cert) {
  ssl.cert = fs.readFileSync(cert);
  ssl.key = fs.readFileSync(key);
}
const kafka = new Kafka({ clientId: 'kjs-tls', brokers: [bootstrap], ssl, logLevel: logLevel.ERROR,
                          retry: { retries: 5 } });

async function main() {
  const p = kafka.producer();
  await p.connect();
  for (let i = 0; i < count; i += 100) {
    const msgs = [];
    for (let k = i; k < Math.min(count, i + 100); k++)
      msgs.push({ value: 't' + k });
    await p.send({ topic, acks: -1, messages: msgs });
  }
  await p.disconnect();
  const c = kafka.consumer({ groupId: 'kjs-tls', maxWaitTimeInMs: 200 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out with ' + got.length)), 60000);
    c.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString());
        if (got.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await c.disconnect();
  for (let i = 0; i < count; i++)
    if (got[i] !== 't' + i)
      throw new Error('message ' + i + ' is ' + got[i]);
  console.log('ok ' + got.length);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
