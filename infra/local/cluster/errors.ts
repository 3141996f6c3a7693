import { GangwayError } from "../../../core/errors.js";

/** A slice name the provider does not know (never had, or already released/preempted). */
export class UnknownSlice extends GangwayError {
  override readonly name = "UnknownSlice";
}

/** An inventory file that does not parse (field path, expected, got). */
export class InvalidInventory extends GangwayError {
  override readonly name = "InvalidInventory";
}
