import { Type } from 'class-transformer'
import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler } from '@esk/core'

// Dates survive serialisation only through @Type(() => Date), whose metadata lives inside the
// class-transformer module: with two copies installed, esk would not see it and would refuse the
// commands below (a Date that comes back as a string).

@Event('shop.OrderPlaced')
export class OrderPlaced {
  item = ''
  @Type(() => Date) at = new Date(0)
}

@Event('shop.OrderShipped')
export class OrderShipped {
  @Type(() => Date) at = new Date(0)
}

@Command('shop.PlaceOrder')
export class PlaceOrder {
  item = ''
  @Type(() => Date) at = new Date(0)
}

@Command('shop.ShipOrder')
export class ShipOrder {
  @Type(() => Date) at = new Date(0)
}

@Aggregate({ name: 'order' })
export class Order {
  item = ''
  @Type(() => Date) placedAt: Date | undefined = undefined
  @Type(() => Date) shippedAt: Date | undefined = undefined

  @CommandHandler(PlaceOrder, { creates: true })
  place(c: PlaceOrder): OrderPlaced {
    return Object.assign(new OrderPlaced(), { item: c.item, at: c.at })
  }

  @CommandHandler(ShipOrder)
  ship(c: ShipOrder): OrderShipped {
    if (this.shippedAt !== undefined) throw new CommandRejected('the order has been shipped already', { reason: 'ALREADY_SHIPPED' })
    // Date methods on the command and the state: both must have come back as Dates.
    if (this.placedAt === undefined || c.at.getTime() < this.placedAt.getTime()) {
      throw new CommandRejected('an order ships after it is placed', { reason: 'BEFORE_PLACED' })
    }
    return Object.assign(new OrderShipped(), { at: c.at })
  }

  @EventHandler(OrderPlaced)
  placed(e: OrderPlaced): void {
    this.item = e.item
    this.placedAt = e.at
  }

  @EventHandler(OrderShipped)
  shipped(e: OrderShipped): void {
    this.shippedAt = e.at
  }
}
