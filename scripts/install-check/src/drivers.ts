import type { Driver } from '@esk/core'
import type { Store, Transport } from '@esk/core/driver'
import { kafkaTransport, type KafkaTransportOptions } from '@esk/kafka'
import { redisStore } from '@esk/redis'

/** The production driver, as an application builds it; the check only type-checks and loads it. */
export function kafkaRedisDriver(kafka: KafkaTransportOptions, redisUrl: string): Driver {
  const transport: Transport = kafkaTransport(kafka)
  const store: Store = redisStore({ url: redisUrl })
  return { transport, store }
}
