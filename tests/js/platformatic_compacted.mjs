// @platformatic/kafka reader for tests/integration/test_compacted_topics.py: reads TOPIC from the
// earliest offset up to offset LAST and prints one JSON line [[offset, key, value or null], ...].
//   node platformatic_compacted.mjs BOOTSTRAP TOPIC LAST
import { Consumer } from '@platformatic/kafka';

const [bootstrap, topic, last] = process.argv.slice(2);
const consumer = new Consumer({ groupId: 'plt-compacted-' + process.pid, clientId: 'plt-compacted',
                                bootstrapBrokers: [bootstrap], maxWaitTime: 200 });
const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false,
                                        sessionTimeout: 10000, heartbeatInterval: 500 });
const out = [];
const timer = setTimeout(() => { console.error('timed out after ' + out.length); process.exit(2); }, 60000);
const text = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString());
for await (const message of stream) {
  out.push([Number(message.offset), text(message.key), text(message.value)]);
  if (Number(message.offset) >= Number(last)) break;
}
clearTimeout(timer);
await stream.close();
await consumer.close();
console.log(JSON.stringify(out));
