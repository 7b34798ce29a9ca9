import { describe, expect, it } from 'vitest'
import { localStack } from '../src/stack.js'

describe('localStack', () => {
  it('finds the single node of scripts/stack.sh by default, on its port if one is set', () => {
    expect(localStack({}).brokers).toEqual(['127.0.0.1:9092'])
    expect(localStack({ ESK_KAFKA_PORT: '29092' }).brokers).toEqual(['127.0.0.1:29092'])
  })

  it('finds the three nodes of scripts/stack.sh start --cluster when ESK_STACK_MODE=cluster', () => {
    expect(localStack({ ESK_STACK_MODE: 'cluster' }).brokers).toEqual(['127.0.0.1:9192', '127.0.0.1:9193', '127.0.0.1:9194'])
    expect(localStack({ ESK_STACK_MODE: 'cluster', ESK_KAFKA_CLUSTER_PORT: '29101' }).brokers).toEqual([
      '127.0.0.1:29101',
      '127.0.0.1:29102',
      '127.0.0.1:29103',
    ])
  })

  it('takes ESK_KAFKA_BROKERS over either default', () => {
    expect(localStack({ ESK_STACK_MODE: 'cluster', ESK_KAFKA_BROKERS: 'a:1, b:2' }).brokers).toEqual(['a:1', 'b:2'])
  })
})
