import { describeDriverContract } from '@esk/testing/contract'
import { isolatedStack } from './support.js'

// The same suite the embedded driver passes, unchanged, over the real broker and redis-server.
describeDriverContract('kafka transport + redis store', async () => isolatedStack())
