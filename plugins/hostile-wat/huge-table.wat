;; Declares a table of 10 million funcref elements: instantiation must fail under the host's table limit.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (table 10000000 funcref)
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)
