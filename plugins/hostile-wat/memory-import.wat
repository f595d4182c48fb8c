;; Imports its memory from "env" instead of exporting one: loading or instantiation must fail.
(module
  (import "env" "memory" (memory 1))
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)
