;; Exports functions with signatures other than (i32, i32) -> i32: "wide" takes an i64, "silent" returns nothing. The host must refuse to invoke them.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (func (export "wide") (param i64) (result i32) (i32.const 0))
  (func (export "silent") (param i32 i32))
)
