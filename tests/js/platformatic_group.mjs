// @platformatic/kafka (flexible protocol versions only) through a consumer group, for
// tests/integration/test_groups.py:
//   node platformatic_group.mjs BOOTSTRAP TOPIC GROUP FIRST COUNT
// produces ids FIRST..FIRST+COUNT-1, then consumes in GROUP (committed offsets, else earliest),
// committing each message, until it has COUNT messages or 30 s passed; prints one line
// "got <id>" per message and exits.
//   node platformatic_group.mjs BOOTSTRAP admin GROUP
// lists and describes the groups, deletes GROUP, lists again; prints one JSON line.
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';

const [bootstrap, topic, group, firstArg, countArg] = process.argv.slice(2);
if (topic === 'admin') {
  const admin = new Admin({ clientId: 'plt-admin', bootstrapBrokers: [bootstrap] });
  const listed = await admin.listGroups();
  const described = await admin.describeGroups({ groups: [group] });
  await admin.deleteGroups({ groups: [group] });
  const after = await admin.listGroups();
  await admin.close();
  const g = described.get(group);
  console.log(JSON.stringify({ listed: [...listed.values()].map(x => [x.id, x.state, x.protocolType]),
                               described: [g.state, g.protocolType, g.members.size], after: [...after.keys()] }));
  process.exit(0);
}
const first = Number(firstArg), count = Number(countArg);

const producer = new Producer({ clientId: 'plt-producer', bootstrapBrokers: [bootstrap], serializers: stringSerializers,
                                acks: -1 });
const messages = [];
for (let i = first; i < first + count; i++) messages.push({ topic, key: String(i), value: String(i) });
await producer.send({ messages });
await producer.close();

const consumer = new Consumer({ groupId: group, clientId: 'plt-consumer', bootstrapBrokers: [bootstrap],
                                deserializers: stringDeserializers, maxWaitTime: 200 });
const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest',
                                        autocommit: false, sessionTimeout: 10000, heartbeatInterval: 500 });
let got = 0;
const timer = setTimeout(() => { console.error('timed out after ' + got); process.exit(2); }, 30000);
for await (const message of stream) {
  process.stdout.write('got ' + message.value + '\n');
  await message.commit();
  if (++got >= count) break;
}
clearTimeout(timer);
await stream.close();
await consumer.close();
