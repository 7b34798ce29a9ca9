import type { RecordHeaders } from '@esk/core/driver'
import type { IHeaders } from 'kafkajs'

/**
 * The headers of a record that are not esk's own (trace context, in practice) as text, or
 * undefined when there are none.
 */
export function textHeaders(headers: IHeaders): RecordHeaders | undefined {
  let text: Record<string, string> | undefined
  for (const name in headers) {
    if (name.startsWith('esk-')) continue
    const raw = headers[name]
    const value = Array.isArray(raw) ? raw[0] : raw
    if (value === undefined) continue
    ;(text ??= {})[name] = typeof value === 'string' ? value : value.toString('utf8')
  }
  return text
}
