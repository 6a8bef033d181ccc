// The admin APIs through the JavaScript clients, one step per run (test_admin.py checks what each
// prints: one JSON line). Usage: node admin.mjs STEP BOOTSTRAP TOPIC
//   kafkajs-configs        describeConfigs, alterConfigs (legacy: the whole set), describeConfigs
//   kafkajs-grow           createTopics (3 partitions), createPartitions to 6, describeCluster
//   kafkajs-produce        one message to each of the 6 partitions
//   platformatic-configs   incrementalAlterConfigs (SET, APPEND, SUBTRACT, DELETE), describeConfigs v4
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Kafka, ConfigResourceTypes, logLevel } = require('kafkajs');
const [step, bootstrap, topic] = process.argv.slice(2);
const TOPIC = 2;

function configMap(entries, name, value, source, isDefault) {
  const out = {};
  for (const e of entries) out[e[name]] = { value: e[value], source: e[source], isDefault: e[isDefault] };
  return out;
}

function kafkajs() {
  return new Kafka({ clientId: 'sluice-admin-test', brokers: [bootstrap], logLevel: logLevel.NOTHING });
}

async function kafkajsConfigs() {
  const admin = kafkajs().admin();
  await admin.connect();
  const describe = async () => {
    const r = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
                                            includeSynonyms: false });
    return configMap(r.resources[0].configEntries, 'configName', 'configValue', 'configSource', 'isDefault');
  };
  const before = await describe();
  await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic,
    configEntries: [{ name: 'max.message.bytes', value: '2000' }, { name: 'retention.ms', value: '3600000' }] }] });
  const after = await describe();
  let unknownKey = null;
  try {
    await admin.alterConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic,
      configEntries: [{ name: 'no.such.config', value: '1' }] }] });
  } catch (e) {
    unknownKey = e.type || e.name;
  }
  await admin.disconnect();
  return { before, after, unknownKey };
}

async function kafkajsGrow() {
  const admin = kafkajs().admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  await admin.createPartitions({ topicPartitions: [{ topic, count: 6 }] });
  let shrink = null;
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
  } catch (e) {
    shrink = e.type || e.name;
  }
  const cluster = await admin.describeCluster();
  await admin.disconnect();
  return { shrink, cluster };
}

async function kafkajsProduce() {
  const producer = kafkajs().producer();
  await producer.connect();
  const offsets = [];
  for (let p = 0; p < 6; p++) {
    const r = await producer.send({ topic, acks: -1, messages: [{ partition: p, value: `kafkajs-${p}` }] });
    offsets.push([r[0].partition, r[0].baseOffset]);
  }
  await producer.disconnect();
  return { offsets };
}

async function platformaticConfigs() {
  const { Admin } = await import('@platformatic/kafka');
  const admin = new Admin({ clientId: 'sluice-admin-test', bootstrapBrokers: [bootstrap] });
  try {
    await admin.incrementalAlterConfigs({ resources: [{ resourceType: TOPIC, resourceName: topic, configs: [
      { name: 'max.message.bytes', configOperation: 0, value: '3000' },
      { name: 'cleanup.policy', configOperation: 2, value: 'compact' },
      { name: 'retention.ms', configOperation: 1 },
    ] }] });
    const appended = await admin.describeConfigs({ resources: [{ resourceType: TOPIC, resourceName: topic,
      configurationKeys: ['cleanup.policy'] }] });
    await admin.incrementalAlterConfigs({ resources: [{ resourceType: TOPIC, resourceName: topic, configs: [
      { name: 'cleanup.policy', configOperation: 3, value: 'delete' },
    ] }] });
    const r = await admin.describeConfigs({ resources: [{ resourceType: TOPIC, resourceName: topic }],
                                            includeSynonyms: true });
    const configs = {};
    for (const c of r[0].configs)
      configs[c.name] = { value: c.value, source: c.configSource, synonyms: c.synonyms.map((s) => [s.value, s.source]),
                          type: c.configType, readOnly: c.readOnly };
    let bad = null;
    try {
      await admin.incrementalAlterConfigs({ resources: [{ resourceType: TOPIC, resourceName: topic, configs: [
        { name: 'max.message.bytes', configOperation: 2, value: '5' },
      ] }] });
    } catch (e) {
      const inner = (e.errors && e.errors[0]) || e;
      bad = JSON.stringify(inner.response || inner.errors || inner.message);
    }
    return { appended: appended[0].configs.map((c) => c.value), configs, bad };
  } finally {
    await admin.close();
  }
}

const steps = { 'kafkajs-configs': kafkajsConfigs, 'kafkajs-grow': kafkajsGrow, 'kafkajs-produce': kafkajsProduce,
                'platformatic-configs': platformaticConfigs };
try {
  console.log(JSON.stringify(await steps[step]()));
  process.exit(0);
} catch (e) {
  console.error(step, 'failed:', e && e.stack ? e.stack : e);
  process.exit(1);
}
