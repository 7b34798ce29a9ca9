// kafkajs is CommonJS and Node's ESM loader cannot see all of its named exports, so values are
// taken from its default export here, once; types are imported from 'kafkajs' directly.
import kafkajs from 'kafkajs'

export const { Kafka, logLevel, AssignerProtocol, ConfigResourceTypes, Partitioners, PartitionAssigners } = kafkajs
