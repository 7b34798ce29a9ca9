import { InMemoryProjectionStore } from '@esk/core'
import { describeProjectionStoreContract } from '@esk/testing'

describeProjectionStoreContract('in memory', () => new InMemoryProjectionStore())
