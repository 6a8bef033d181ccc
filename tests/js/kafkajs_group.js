// kafkajs 2.x consumer-group driver for tests/integration/test_groups.py.
//   node kafkajs_group.js produce BOOTSTRAP TOPIC FIRST COUNT   messages "m<id>" keyed by id, acks=all
//   node kafkajs_group.js consume BOOTSTRAP TOPIC GROUP         prints "got <id> <partition> <offset>" per
//                                                               message, "assigned <n>" after each rebalance;
//                                                               SIGTERM: disconnect (commits, leaves) and exit 0
const { Kafka, logLevel } = require('kafkajs');

const [mode, bootstrap, topic, a, b] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'kjs-' + process.pid, brokers: [bootstrap], logLevel: logLevel.ERROR,
                          retry: { retries: 10 } });

async function produce(first, count) {
  const p = kafka.producer();
  await p.connect();
  for (let i = first; i < first + count; i += 100) {
    const msgs = [];
    for (let k = i; k < Math.min(first + count, i + 100); k++)
      msgs.push({ key: String(k), value: 'm' + k });
    await p.send({ topic, acks: -1, messages: msgs });
  }
  await p.disconnect();
}

async function consume(group) {
  const c = kafka.consumer({ groupId: group, sessionTimeout: 10000, rebalanceTimeout: 15000,
                             heartbeatInterval: 500, maxWaitTimeInMs: 200 });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await c.disconnect();
    process.stdout.write('stopped\n', () => process.exit(0));
  };
  process.on('SIGTERM', stop);
  c.on(c.events.GROUP_JOIN, e => {
    const n = Object.values(e.payload.memberAssignment).reduce((s, v) => s + v.length, 0);
    process.stdout.write('assigned ' + n + '\n');
  });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  await c.run({
    eachMessage: async ({ partition, message }) => {
      process.stdout.write('got ' + message.value.toString().slice(1) + ' ' + partition + ' ' + message.offset + '\n');
    },
  });
}

(mode === 'produce' ? produce(Number(a), Number(b)) : consume(a)).catch(e => {
  console.error(e);
  process.exit(1);
});
