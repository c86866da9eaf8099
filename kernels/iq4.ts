// PLACEHOLDER: replaced by the real kernel (see kernels/index.ts for the contract).
export function quantizeRowsIQ4_NL(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeIQ4_NL(src: usize, dst: usize, k: i32): void { unreachable(); }
export function quantizeRowsIQ4_XS(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeIQ4_XS(src: usize, dst: usize, k: i32): void { unreachable(); }
