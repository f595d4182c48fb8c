;; tenantry_alloc returns 65528, 8 bytes before the end of the 1-page memory: an input longer than 8 bytes does not fit, and the host must fail the invocation rather than write out of bounds.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 65528))
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)
