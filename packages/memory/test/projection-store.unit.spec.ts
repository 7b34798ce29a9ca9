import { InMemoryProjectionStore } from '@esk/core/driver'
import { describeProjectionStoreContract } from '@esk/testing/contract'

describeProjectionStoreContract('in memory', () => new InMemoryProjectionStore())
