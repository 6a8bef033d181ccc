// kafkajs admin createAcls / describeAcls / deleteAcls against an agent: prints one JSON line.
// Usage: node kafkajs_acl.js BOOTSTRAP
const { Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes,
        ResourcePatternTypes } = require('kafkajs')

async function main () {
  const kafka = new Kafka({ clientId: 'acl-test', brokers: [process.argv[2]], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  try {
    const acl = (name, pattern, op, perm) => ({
      resourceType: AclResourceTypes.TOPIC, resourceName: name, resourcePatternType: pattern,
      principal: 'User:js', host: '*', operation: op, permissionType: perm
    })
    await admin.createAcls({ acl: [
      acl('js-', ResourcePatternTypes.PREFIXED, AclOperationTypes.WRITE, AclPermissionTypes.ALLOW),
      acl('js-secret', ResourcePatternTypes.LITERAL, AclOperationTypes.ALL, AclPermissionTypes.DENY)
    ] })
    let bad = null
    try {
      await admin.createAcls({ acl: [{ ...acl('x', ResourcePatternTypes.LITERAL, AclOperationTypes.READ,
        AclPermissionTypes.ALLOW), principal: 'nobody' }] })
    } catch (e) { bad = e.type || e.name }
    const match = await admin.describeAcls({
      resourceType: AclResourceTypes.TOPIC, resourceName: 'js-secret', resourcePatternType: ResourcePatternTypes.MATCH,
      operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY
    })
    const deleted = await admin.deleteAcls({ filters: [{
      resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, principal: 'User:js',
      operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.DENY
    }] })
    const after = await admin.describeAcls({
      resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY
    })
    const names = r => r.resources.map(x => [x.resourceName, x.resourcePatternType, x.acls.length]).sort()
    console.log(JSON.stringify({
      bad,
      match: names(match),
      deleted: deleted.filterResponses.map(f => f.matchingAcls.map(m => m.resourceName)),
      after: names(after)
    }))
  } finally {
    await admin.disconnect()
  }
}

main().catch(e => { console.error(e); process.exit(1) })
