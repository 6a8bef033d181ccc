// kafkajs 2.x reader for tests/integration/test_compacted_topics.py: reads partition 0 of TOPIC from
// the beginning up to offset LAST and prints one JSON line [[offset, key, value or null], ...].
//   node kafkajs_compacted.js BOOTSTRAP TOPIC LAST
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, last] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'kjs-' + process.pid, brokers: [bootstrap], logLevel: logLevel.ERROR });

async function main() {
  const c = kafka.consumer({ groupId: 'kjs-compacted-' + process.pid, maxWaitTimeInMs: 200 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const out = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout after ' + out.length + ' records')), 60000);
    c.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        out.push([Number(message.offset), message.key && message.key.toString(),
                  message.value === null ? null : message.value.toString()]);
        if (Number(message.offset) >= Number(last)) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await c.disconnect();
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
